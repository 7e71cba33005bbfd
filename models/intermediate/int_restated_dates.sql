{{ config(materialized='table') }}

-- Days before the run window whose data changed inside it: an order placed weeks ago that is
-- cancelled, refunded, edited or deleted today, or ad spend the marketing API restated. The daily
-- marts rebuild these days together with their window, so a late change is never lost to the
-- lookback. A table (not a view): each mart's delete pre-hook and its insert must see the same
-- days even while the CDC sink keeps writing. Empty when the run has no window (full rebuild).
{%- set window = run_window() %}

with order_changes as (
    select cast(order_id as bigint) as order_id, {{ to_utc_timestamp('_cdc_updated_at') }} as changed_at
    from {{ source('shop', 'orders') }}
    union all
    select cast(order_id as bigint), {{ to_utc_timestamp('_cdc_updated_at') }}
    from {{ source('shop', 'order_items') }}
    union all
    select cast(order_id as bigint), {{ to_utc_timestamp('_cdc_updated_at') }}
    from {{ source('shop', 'payments') }}
),

changed_orders as (
    select distinct order_id
    from order_changes
    where {{ in_window(utc_date('changed_at')) }}
),

order_days as (
    -- tombstones included: a deleted order's day must lose it
    select distinct {{ utc_date(iso_to_timestamp('orders.ordered_at')) }} as restated_date
    from {{ source('shop', 'orders') }} as orders
    inner join changed_orders on cast(orders.order_id as bigint) = changed_orders.order_id
),

spend_days as (
    select distinct spend_date as restated_date
    from {{ ref('stg_marketing__ad_spend') }}
    where {{ in_window(utc_date('updated_at')) }}
),

days as (
    select restated_date from order_days
    union
    select restated_date from spend_days
)

select restated_date
from days
where restated_date is not null
{%- if window.start is none and window.end is none %}
    and 1 = 0
{%- else %}
    and not {{ in_window('restated_date') }}
{%- endif %}
