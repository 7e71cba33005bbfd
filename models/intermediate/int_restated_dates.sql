{{ config(materialized='table') }}

-- Days before the run window whose data reached the lake inside it, and which daily marts must
-- rebuild them (restated_for):
-- * 'orders': the order dates of orders whose silver rows (orders, order_items, payments, deletes
--   included) were written inside the window (_cdc_updated_at): an order placed weeks ago that is
--   cancelled, refunded, edited or deleted today;
-- * 'ad_spend': the spend dates of ad spend the lake received inside the window (the dlt load that
--   upserted the row), whatever the marketing API's updated_at says;
-- * 'clickstream': every event day of every version of a landing object a version of which was
--   loaded inside the window (a late file restates its own days, a corrected file also the days
--   its earlier versions covered), with the day before and after: sessions cross midnight.
-- The daily marts rebuild these days together with their window, so a late change is never lost
-- to the lookback. A table (not a view): each mart's delete pre-hook and its insert must see the
-- same days even while the loaders keep writing. Empty when the run has no window (full rebuild).
{%- set window = run_window() %}
{%- if window.start is none and window.end is none %}
    {%- set outside_window = '1 = 0' %}
{%- else %}
    {%- set outside_window = 'not ' ~ in_window('restated_date') %}
{%- endif %}

with order_changes as (
    select cast(order_id as bigint) as order_id, {{ to_utc_timestamp('_cdc_updated_at') }} as changed_at
    from {{ source('shop', 'orders') }}
    union all
    select cast(order_id as bigint) as order_id, {{ to_utc_timestamp('_cdc_updated_at') }} as changed_at
    from {{ source('shop', 'order_items') }}
    union all
    select cast(order_id as bigint) as order_id, {{ to_utc_timestamp('_cdc_updated_at') }} as changed_at
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
    -- by arrival in the lake (dlt load time), not the API's updated_at: spend the API stamped days
    -- ago but that reached the lake now (a load outage, a row the API back-dated) is restated too
    select distinct spend_date as restated_date
    from {{ ref('stg_marketing__ad_spend') }}
    where {{ in_window(utc_date('loaded_at')) }}
),

object_versions as (
    -- every manifest row (staged or loaded): the days any version of an object may have had rows in
    select object_key, loaded_at, event_dates
    from {{ ref('stg_landing__objects') }}
    where object_kind = 'clickstream'
),

objects_loaded as (
    select distinct object_key
    from object_versions
    where {{ in_window(utc_date('loaded_at')) }}
),

object_days as (
    select distinct cast(version_days.event_day as date) as event_date
    from (
        {{ list_rows('object_versions', ['object_key'], 'event_dates', 'event_day') }}
    ) as version_days
    inner join objects_loaded on version_days.object_key = objects_loaded.object_key
),

day_offsets as (
    select -1 as day_offset
    union all
    select 0
    union all
    select 1
),

clickstream_days as (
    select distinct {{ add_days('object_days.event_date', 'day_offsets.day_offset') }} as restated_date
    from object_days
    cross join day_offsets
),

days as (
    select restated_date, 'orders' as restated_for from order_days
    union all
    select restated_date, 'ad_spend' as restated_for from spend_days
    union all
    select restated_date, 'clickstream' as restated_for from clickstream_days
)

select
    restated_date,
    cast(restated_for as varchar) as restated_for
from days
where restated_date is not null
    and {{ outside_window }}
