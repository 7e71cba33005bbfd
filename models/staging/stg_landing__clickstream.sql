-- One row per bronze row: the events of every object version bronze holds, typed, with the
-- version they came from. Which version counts (the object's newest, from the manifest) and the
-- de-duplication of event_ids delivered twice are decided in int_clickstream__events.
-- event_date (UTC date of event_ts) is the bronze partition column: a plain cast keeps pruning.
with source as (
    select * from {{ source('landing', 'clickstream') }}
)

select
    cast(event_id as varchar) as event_id,
    cast(event_type as varchar) as event_type,
    {{ to_utc_timestamp('event_ts') }} as event_at,
    {{ to_date('event_date') }} as event_date,
    cast(session_id as varchar) as session_id,
    cast(customer_id as bigint) as customer_id,
    cast(product_id as bigint) as product_id,
    cast(order_id as bigint) as order_id,
    cast(page_url as varchar) as page_url,
    cast(referrer as varchar) as referrer,
    cast(campaign_id as varchar) as campaign_id,
    cast(device as varchar) as device,
    cast(_object_key as varchar) as object_key,
    cast(_object_etag as varchar) as object_etag,
    cast(_line_number as bigint) as line_number,
    cast(_dlt_load_id as varchar) as dlt_load_id
from source
