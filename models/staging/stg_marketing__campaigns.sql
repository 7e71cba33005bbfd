with source as (
    select * from {{ source('marketing', 'campaigns') }}
)

select
    cast(campaign_id as varchar) as campaign_id,
    cast(name as varchar) as campaign_name,
    cast(channel as varchar) as channel,
    cast(status as varchar) as campaign_status,
    {{ to_decimal('daily_budget', 12, 2) }} as daily_budget,
    {{ to_date('start_date') }} as start_date,
    {{ to_date('end_date') }} as end_date,
    {{ to_utc_timestamp('created_at') }} as created_at,
    {{ to_utc_timestamp('updated_at') }} as updated_at
from source
