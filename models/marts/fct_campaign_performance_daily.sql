{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        partitioned_by=(['performance_date'] if target.type == 'athena' else none),
        pre_hook="{{ replace_window('performance_date', restated=['orders', 'ad_spend']) }}",
        tags=['daily']
    )
}}

-- Per campaign and day: ad spend (marketing API) against the net revenue of the orders attributed
-- to the campaign (orders.campaign_id, by UTC order date; cancelled and returned orders do not
-- count, partial refunds are subtracted). ROAS = revenue / spend.
-- Both in USD: spend converted at its spend date's rate, orders at their order date's.
with rates as (
    select * from {{ ref('int_currency_rates') }}
),

spend as (
    select
        ad_spend.campaign_id,
        ad_spend.spend_date as performance_date,
        sum(ad_spend.impressions) as impressions,
        sum(ad_spend.clicks) as clicks,
        sum({{ to_usd('ad_spend.spend', 'rates.usd_per_unit') }}) as spend
    from {{ ref('stg_marketing__ad_spend') }} as ad_spend
    left join rates on {{ rate_applies('rates', 'ad_spend.currency', 'ad_spend.spend_date') }}
    where {{ in_window_or_restated('ad_spend.spend_date', ['orders', 'ad_spend']) }}
    group by ad_spend.campaign_id, ad_spend.spend_date
),

revenue as (
    select
        campaign_id,
        order_date as performance_date,
        count(*) as attributed_orders,
        sum(net_revenue_usd) as attributed_revenue
    from {{ ref('fct_orders') }}
    where {{ in_window_or_restated('order_date', ['orders', 'ad_spend']) }}
        and counts_as_revenue
        and order_status <> 'returned'
        and campaign_id is not null
    group by campaign_id, order_date
),

joined as (
    select
        coalesce(spend.campaign_id, revenue.campaign_id) as campaign_id,
        coalesce(spend.performance_date, revenue.performance_date) as performance_date,
        cast(coalesce(spend.impressions, 0) as bigint) as impressions,
        cast(coalesce(spend.clicks, 0) as bigint) as clicks,
        cast(coalesce(spend.spend, 0) as decimal(12, 2)) as spend,
        cast(coalesce(revenue.attributed_orders, 0) as bigint) as attributed_orders,
        cast(coalesce(revenue.attributed_revenue, 0) as decimal(12, 2)) as attributed_revenue
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
