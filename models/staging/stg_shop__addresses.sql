with source as (
    select * from {{ source('shop', 'addresses') }}
    where not _cdc_deleted
)

select
    cast(address_id as bigint) as address_id,
    cast(customer_id as bigint) as customer_id,
    cast(kind as varchar) as address_kind,
    cast(line1 as varchar) as line1,
    cast(city as varchar) as city,
    cast(postal_code as varchar) as postal_code,
    upper(trim(cast(country as varchar))) as country,
    {{ iso_to_timestamp('created_at') }} as created_at,
    {{ iso_to_timestamp('updated_at') }} as updated_at,
    cast(_cdc_lsn as bigint) as cdc_lsn
from source
