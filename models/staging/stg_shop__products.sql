with source as (
    select * from {{ source('shop', 'products') }}
    where not _cdc_deleted
)

select
    cast(product_id as bigint) as product_id,
    cast(sku as varchar) as sku,
    cast(name as varchar) as product_name,
    cast(category as varchar) as category,
    cast(brand as varchar) as brand,
    {{ to_decimal('price', 10, 2) }} as price,
    {{ to_decimal('cost', 10, 2) }} as cost,
    {{ json_text('attributes', '$.color') }} as color,
    {{ json_text('attributes', '$.material') }} as material,
    {{ json_text('attributes', '$.size') }} as size,
    cast(attributes as varchar) as attributes_json,
    cast(is_active as boolean) as is_active,
    {{ iso_to_timestamp('created_at') }} as created_at,
    {{ iso_to_timestamp('updated_at') }} as updated_at,
    cast(_cdc_lsn as bigint) as cdc_lsn
from source
