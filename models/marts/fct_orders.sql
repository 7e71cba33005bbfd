{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        partitioned_by=(['order_date'] if target.type == 'athena' else none),
        pre_hook="{{ replace_window('order_date', restated=['orders']) }}",
        tags=['daily']
    )
}}

-- One row per order (current state), by UTC order date. Daily-partitioned: a run rebuilds the
-- order dates of its window (see macros/run_window.sql). Amounts stay in the order's currency;
-- the *_usd columns convert them at the rate of the order date (int_currency_rates).
with orders as (
    select * from {{ ref('stg_shop__orders') }}
    where {{ in_window_or_restated('order_date', ['orders']) }}
),

items as (
    select * from {{ ref('int_orders__items') }}
),

payments as (
    select * from {{ ref('int_orders__payments') }}
),

addresses as (
    select address_id, country from {{ ref('stg_shop__addresses') }}
),

rates as (
    select * from {{ ref('int_currency_rates') }}
)

select
    orders.order_id,
    orders.order_date,
    orders.ordered_at,
    orders.customer_id,
    orders.shipping_address_id,
    addresses.country as shipping_country,
    orders.order_status,
    orders.order_status = 'cancelled' as is_cancelled,
    orders.order_status <> 'cancelled' as counts_as_revenue,
    orders.currency,
    orders.order_total,
    rates.usd_per_unit,
    {{ to_usd('orders.order_total', 'rates.usd_per_unit') }} as order_total_usd,
    case
        when orders.order_status in ('cancelled', 'returned') then cast(0 as decimal(12, 2))
        else {{ to_usd('orders.order_total - coalesce(payments.refunded_amount, 0)', 'rates.usd_per_unit') }}
    end as net_revenue_usd,
    cast(coalesce(items.item_lines, 0) as bigint) as item_lines,
    cast(coalesce(items.units, 0) as bigint) as units,
    cast(coalesce(items.items_subtotal, 0) as decimal(12, 2)) as items_subtotal,
    cast(coalesce(items.discount_total, 0) as decimal(12, 2)) as discount_total,
    cast(coalesce(payments.captured_amount, 0) as decimal(12, 2)) as captured_amount,
    cast(coalesce(payments.refunded_amount, 0) as decimal(12, 2)) as refunded_amount,
    payments.payment_method,
    payments.payment_status,
    orders.campaign_id,
    orders.updated_at
from orders
left join items on orders.order_id = items.order_id
left join payments on orders.order_id = payments.order_id
left join addresses on orders.shipping_address_id = addresses.address_id
left join rates on {{ rate_applies('rates', 'orders.currency', 'orders.order_date') }}
