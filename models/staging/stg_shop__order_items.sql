with source as (
    select * from {{ source('shop', 'order_items') }}
    where not _cdc_deleted
)

select
    cast(order_item_id as bigint) as order_item_id,
    cast(order_id as bigint) as order_id,
    cast(product_id as bigint) as product_id,
    cast(quantity as integer) as quantity,
    {{ to_decimal('unit_price', 10, 2) }} as unit_price,
    {{ to_decimal('discount', 10, 2) }} as discount,
    {{ to_decimal('line_total', 12, 2) }} as line_total,
    {{ iso_to_timestamp('created_at') }} as created_at,
    {{ iso_to_timestamp('updated_at') }} as updated_at,
    cast(_cdc_lsn as bigint) as cdc_lsn
from source
