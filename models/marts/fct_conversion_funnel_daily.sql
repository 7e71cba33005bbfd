{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        partitioned_by=(['session_date'] if target.type == 'athena' else none),
        pre_hook="{{ replace_window('session_date', restated=['clickstream']) }}",
        tags=['daily']
    )
}}

-- Conversion funnel per session day. A session counts for every stage up to the deepest one it
-- reached (page_view < product_view < add_to_cart < checkout_start < purchase), so the stage
-- counts never increase down the funnel.
with sessions as (
    select * from {{ ref('fct_web_sessions') }}
    where {{ in_window_or_restated('session_date', ['clickstream']) }}
),

daily as (
    select
        session_date,
        count(*) as sessions,
        count(case when deepest_stage >= 2 then session_id end) as product_view_sessions,
        count(case when deepest_stage >= 3 then session_id end) as add_to_cart_sessions,
        count(case when deepest_stage >= 4 then session_id end) as checkout_sessions,
        count(case when deepest_stage >= 5 then session_id end) as purchase_sessions,
        count(distinct customer_id) as identified_customers
    from sessions
    group by session_date
)

select
    session_date,
    sessions,
    product_view_sessions,
    add_to_cart_sessions,
    checkout_sessions,
    purchase_sessions,
    identified_customers,
    {{ safe_divide('product_view_sessions', 'sessions') }} as product_view_rate,
    {{ safe_divide('add_to_cart_sessions', 'product_view_sessions') }} as add_to_cart_rate,
    {{ safe_divide('checkout_sessions', 'add_to_cart_sessions') }} as checkout_rate,
    {{ safe_divide('purchase_sessions', 'checkout_sessions') }} as purchase_rate,
    {{ safe_divide('purchase_sessions', 'sessions') }} as conversion_rate
from daily
