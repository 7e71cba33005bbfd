{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        partitioned_by=(['session_date'] if target.type == 'athena' else none),
        pre_hook="{{ replace_window('session_date', restated=['clickstream']) }}",
        tags=['daily']
    )
}}

-- One row per clickstream session, dated by the UTC day of its first event. Every event from the
-- day before the earliest day the run rebuilds (window start or restated day) onwards is read, so
-- a session is seen whole up to its last event, and one crossing midnight into the earliest day is
-- dated by its real first event. A session whose start lies before the events read here (it
-- outlived that day of slack) is not re-dated: the day it was dated on keeps it.
with events as (
    select * from {{ ref('int_clickstream__events') }}
    where {{ since_earliest_rebuilt_day('event_date', ['clickstream'], slack_days=1) }}
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
where {{ in_window_or_restated('session_date', ['clickstream']) }}
{%- if is_incremental() %}
    -- a session the mart already holds on a day this run does not rebuild started before the events
    -- read here: it keeps its date, never re-dated into this window
    and not exists (
        select 1
        from {{ this }} as existing
        where existing.session_id = dated.session_id
            and not {{ in_window_or_restated('existing.session_date', ['clickstream']) }}
    )
{%- endif %}
