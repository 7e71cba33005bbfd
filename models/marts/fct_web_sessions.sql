{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        partitioned_by=(['session_date'] if target.type == 'athena' else none),
        pre_hook="{{ replace_window('session_date') }}",
        tags=['daily']
    )
}}

-- One row per clickstream session, dated by the UTC day of its first event. Events from a day
-- before to a day after the window are read, so that a session crossing midnight at either edge
-- is seen whole (and dated by its real first event): sessions are assumed to last under 24 hours.
with events as (
    select * from {{ ref('int_clickstream__events') }}
    where {{ in_window('event_date', start_slack_days=1, end_slack_days=1) }}
),

ordered as (
    select
        *,
        row_number() over (partition by session_id order by event_at, event_id) as position
    from events
),

sessions as (
    select
        session_id,
        min(event_at) as started_at,
        max(event_at) as ended_at,
        count(*) as events,
        count(case when event_type = 'page_view' then event_id end) as page_views,
        count(case when event_type = 'product_view' then event_id end) as product_views,
        count(case when event_type = 'add_to_cart' then event_id end) as add_to_carts,
        count(case when event_type = 'checkout_start' then event_id end) as checkout_starts,
        count(case when event_type = 'purchase' then event_id end) as purchases,
        max(funnel_stage) as deepest_stage,
        max(customer_id) as customer_id,
        max(campaign_id) as campaign_id,
        max(order_id) as order_id,
        max(case when position = 1 then device end) as device,
        max(case when position = 1 then page_url end) as landing_page_url,
        max(case when position = 1 then referrer end) as referrer
    from ordered
    group by session_id
),

dated as (
    select
        *,
        {{ utc_date('started_at') }} as session_date
    from sessions
)

select
    session_id,
    session_date,
    started_at,
    ended_at,
    {{ seconds_between('started_at', 'ended_at') }} as duration_seconds,
    customer_id,
    customer_id is not null as is_identified,
    device,
    landing_page_url,
    referrer,
    campaign_id,
    events,
    page_views,
    product_views,
    add_to_carts,
    checkout_starts,
    purchases,
    deepest_stage,
    case deepest_stage
        when 1 then 'page_view'
        when 2 then 'product_view'
        when 3 then 'add_to_cart'
        when 4 then 'checkout_start'
        when 5 then 'purchase'
    end as deepest_stage_name,
    purchases > 0 as converted,
    order_id
from dated
where {{ in_window('session_date') }}
