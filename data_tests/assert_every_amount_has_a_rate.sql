{{ config(meta={'dagster': {'ref': {'name': 'int_currency_rates'}}}) }}

-- Every order and every ad spend row has an exchange rate on its own day: a currency missing from
-- currency_rates, or a rate that starts after the amount's day, would otherwise drop the amount
-- from the USD sums (or make it zero spend).
with amounts as (
    select 'order' as kind, cast(order_id as varchar) as amount_key, currency, order_date as amount_date
    from {{ ref('stg_shop__orders') }}
    union all
    select 'ad_spend', campaign_id || ' ' || cast(spend_date as varchar), currency, spend_date
    from {{ ref('stg_marketing__ad_spend') }}
),

rates as (
    select * from {{ ref('int_currency_rates') }}
)

select amounts.kind, amounts.amount_key, amounts.currency, amounts.amount_date
from amounts
left join rates on {{ rate_applies('rates', 'amounts.currency', 'amounts.amount_date') }}
where rates.currency is null
