{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        partitioned_by=(['order_date'] if target.type == 'athena' else none),
        pre_hook="{{ replace_window('order_date', restated=['orders']) }}",
        tags=['daily']
    )
}}

-- Revenue per UTC order date, in USD (each order converted at its order date's rate before
-- summing: currencies never add up). Revenue orders = orders whose status is not 'cancelled'
-- (returned orders included in gross revenue). Net revenue leaves out returned orders and
-- subtracts partial refunds (fct_orders.net_revenue_usd). Every day of the run gets a row, days
-- without orders with zeros (a date spine): each day of the window (from the first order when the
-- window has no start; first to last order without a window) and each restated day.
{%- set window = run_window() %}
{%- set restated = restated_dates(['orders']) %}
{%- set first_day = '(select min(order_date) from orders)' %}
{%- set last_day = '(select max(order_date) from orders)' %}
{%- if window.start is not none %}{% set first_day = date_literal(window.start) %}{% endif %}
{%- if window.end is not none %}{% set last_day = add_days(date_literal(window.end), -1) %}{% endif %}

with orders as (
    select * from {{ ref('fct_orders') }}
    where {{ in_window_or_restated('order_date', ['orders']) }}
),

bounds as (
    select
        {{ first_day }} as first_day,
        {{ last_day }} as last_day
),

days as (
    select spine.spine_date as order_date
    from ({{ date_spine('bounds', 'first_day', 'last_day', 'spine_date') }}) as spine
    {%- for day in restated %}
    union
    select {{ date_literal(day) }}
    {%- endfor %}
),

daily as (
    select
        order_date,
        count(case when counts_as_revenue then order_id end) as orders,
        count(case when is_cancelled then order_id end) as cancelled_orders,
        count(distinct case when counts_as_revenue then customer_id end) as customers,
        sum(case when counts_as_revenue then units end) as items_sold,
        sum(case when counts_as_revenue then order_total_usd end) as gross_revenue,
        sum(case when counts_as_revenue then net_revenue_usd end) as net_revenue
    from orders
    group by order_date
)

select
    days.order_date,
    cast(coalesce(daily.orders, 0) as bigint) as orders,
    cast(coalesce(daily.cancelled_orders, 0) as bigint) as cancelled_orders,
    cast(coalesce(daily.customers, 0) as bigint) as customers,
    cast(coalesce(daily.items_sold, 0) as bigint) as items_sold,
    cast(coalesce(daily.gross_revenue, 0) as decimal(12, 2)) as gross_revenue,
    cast(coalesce(daily.net_revenue, 0) as decimal(12, 2)) as net_revenue,
    {{ safe_divide('daily.gross_revenue', 'daily.orders') }} as average_order_value
from days
left join daily on days.order_date = daily.order_date
