with source as (
    select * from {{ source('shop', 'customers') }}
    where not _cdc_deleted
)

select
    cast(customer_id as bigint) as customer_id,
    cast(email as varchar) as email,
    cast(first_name as varchar) as first_name,
    cast(last_name as varchar) as last_name,
    cast(phone as varchar) as phone,
    cast(segment as varchar) as segment,
    cast(marketing_opt_in as boolean) as marketing_opt_in,
    {{ json_text('preferences', '$.language') }} as preferred_language,
    cast(preferences as varchar) as preferences_json,
    {{ iso_to_timestamp('created_at') }} as created_at,
    {{ iso_to_timestamp('updated_at') }} as updated_at,
    cast(_cdc_lsn as bigint) as cdc_lsn
from source
