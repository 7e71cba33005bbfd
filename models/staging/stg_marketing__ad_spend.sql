with source as (
    select * from {{ source('marketing', 'ad_spend') }}
)

select
    cast(campaign_id as varchar) as campaign_id,
    {{ to_date('spend_date') }} as spend_date,
    cast(impressions as bigint) as impressions,
    cast(clicks as bigint) as clicks,
    {{ to_decimal('spend', 12, 2) }} as spend,
    upper(trim(cast(currency as varchar))) as currency,
    {{ to_utc_timestamp('updated_at') }} as updated_at,
    {{ dlt_load_time('_dlt_load_id') }} as loaded_at
from source
