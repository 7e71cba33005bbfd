-- One row per event. A key re-uploaded with new content (a new ETag, loaded again by dlt) replaces
-- its earlier version: only the rows of each object's latest load are kept (per event day, so that
-- date filters still prune). An event_id delivered in two different objects: the first occurrence
-- wins. event_date (UTC date of event_ts) is the bronze partition column.
with source as (
    select * from {{ source('landing', 'clickstream') }}
),

typed as (
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
        cast(_line_number as bigint) as line_number,
        cast(_dlt_load_id as varchar) as dlt_load_id
    from source
),

current_versions as (
    select * from (
        select
            *,
            max(dlt_load_id) over (partition by event_date, object_key) as latest_load_of_object
        from typed
    ) as versions
    where dlt_load_id = latest_load_of_object
),

ranked as (
    select
        *,
        row_number() over (
            partition by event_date, event_id order by dlt_load_id, object_key, line_number
        ) as occurrence
    from current_versions
)

select
    event_id,
    event_type,
    event_at,
    event_date,
    session_id,
    customer_id,
    product_id,
    order_id,
    page_url,
    referrer,
    campaign_id,
    device,
    object_key,
    line_number,
    dlt_load_id
from ranked
where occurrence = 1
