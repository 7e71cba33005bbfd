{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        partitioned_by=(['order_date'] if target.type == 'athena' else none),
        pre_hook="{{ replace_window('order_date', restated=true) }}",
        tags=['daily']
    )
}}

-- One row per order (current state), by UTC order date. Daily-partitioned: a run rebuilds the
-- order dates of its window (see macros/run_window.sql).
with orders as (
    select * from {{ ref('stg_shop__orders') }}
    where {{ in_window_or_restated('order_date') }}
),

items as (
    select * from {{ ref('int_orders__items') }}
),

payments as (
    select * from {{ ref('int_orders__payments') }}
),

addresses as (
    select address_id, country from {{ ref('stg_shop__addresses') }}
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
    coalesce(items.item_lines, 0) as item_lines,
    coalesce(items.units, 0) as units,
    coalesce(items.items_subtotal, 0) as items_subtotal,
    coalesce(items.discount_total, 0) as discount_total,
    coalesce(payments.captured_amount, 0) as captured_amount,
    coalesce(payments.refunded_amount, 0) as refunded_amount,
    payments.payment_method,
    payments.payment_status,
    orders.campaign_id,
    orders.updated_at
from orders
left join items on orders.order_id = items.order_id
left join payments on orders.order_id = payments.order_id
left join addresses on orders.shipping_address_id = addresses.address_id
