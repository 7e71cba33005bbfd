with source as (
    select * from {{ source('shop', 'inventory') }}
    where not _cdc_deleted
)

select
    cast(product_id as bigint) as product_id,
    cast(warehouse as varchar) as warehouse,
    cast(quantity_on_hand as integer) as quantity_on_hand,
    cast(reorder_level as integer) as reorder_level,
    {{ iso_to_timestamp('created_at') }} as created_at,
    {{ iso_to_timestamp('updated_at') }} as updated_at,
    cast(_cdc_lsn as bigint) as cdc_lsn
from source
