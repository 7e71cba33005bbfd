{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        partitioned_by=(['performance_date'] if target.type == 'athena' else none),
        pre_hook="{{ replace_window('performance_date', restated=true) }}",
        tags=['daily']
    )
}}

-- Per campaign and day: ad spend (marketing API) against the revenue of the orders attributed to
-- the campaign (orders.campaign_id, revenue orders only, by UTC order date). ROAS = revenue / spend.
with spend as (
    select
        campaign_id,
        spend_date as performance_date,
        sum(impressions) as impressions,
        sum(clicks) as clicks,
        sum(spend) as spend
    from {{ ref('stg_marketing__ad_spend') }}
    where {{ in_window_or_restated('spend_date') }}
    group by campaign_id, spend_date
),

revenue as (
    select
        campaign_id,
        order_date as performance_date,
        count(*) as attributed_orders,
        sum(order_total) as attributed_revenue
    from {{ ref('fct_orders') }}
    where {{ in_window_or_restated('order_date') }}
        and counts_as_revenue
        and campaign_id is not null
    group by campaign_id, order_date
),

joined as (
    select
        coalesce(spend.campaign_id, revenue.campaign_id) as campaign_id,
        coalesce(spend.performance_date, revenue.performance_date) as performance_date,
        coalesce(spend.impressions, 0) as impressions,
        coalesce(spend.clicks, 0) as clicks,
        coalesce(spend.spend, 0) as spend,
        coalesce(revenue.attributed_orders, 0) as attributed_orders,
        coalesce(revenue.attributed_revenue, 0) as attributed_revenue
    from spend
    full outer join revenue
        on spend.campaign_id = revenue.campaign_id
        and spend.performance_date = revenue.performance_date
),

campaigns as (
    select campaign_id, campaign_name, channel from {{ ref('stg_marketing__campaigns') }}
)

select
    joined.campaign_id,
    joined.performance_date,
    campaigns.campaign_name,
    campaigns.channel,
    joined.impressions,
    joined.clicks,
    joined.spend,
    joined.attributed_orders,
    joined.attributed_revenue,
    {{ safe_divide('joined.attributed_revenue', 'joined.spend') }} as roas,
    {{ safe_divide('joined.clicks', 'joined.impressions') }} as click_through_rate,
    {{ safe_divide('joined.spend', 'joined.attributed_orders') }} as cost_per_order
from joined
left join campaigns on joined.campaign_id = campaigns.campaign_id
