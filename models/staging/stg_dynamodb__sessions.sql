with source as (
    select * from {{ source('dynamodb', 'sessions') }}
)

select
    cast(session_id as varchar) as session_id,
    cast(customer_id as bigint) as customer_id,
    cast(campaign_id as varchar) as campaign_id,
    cast(device as varchar) as device,
    cast(channel as varchar) as channel,
    cast(page_views as integer) as page_views,
    {{ to_utc_timestamp('started_at') }} as started_at,
    {{ to_utc_timestamp('ended_at') }} as ended_at,
    {{ to_utc_timestamp('updated_at') }} as updated_at
from source
