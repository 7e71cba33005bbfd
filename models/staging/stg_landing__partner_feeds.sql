-- One row per partner, sku and feed day: a feed re-delivered later replaces the earlier one; within
-- one load the last line for a sku wins.
with source as (
    select * from {{ source('landing', 'partner_feeds') }}
),

typed as (
    select
        cast(partner_id as varchar) as partner_id,
        cast(sku as varchar) as sku,
        {{ to_decimal('partner_price', 12, 2) }} as partner_price,
        upper(trim(cast(currency as varchar))) as currency,
        cast(stock_level as integer) as stock_level,
        {{ to_date('feed_date') }} as feed_date,
        cast(_dlt_load_id as varchar) as dlt_load_id,
        cast(_object_key as varchar) as object_key,
        cast(_line_number as bigint) as line_number
    from source
),

ranked as (
    select
        *,
        row_number() over (
            partition by partner_id, sku, feed_date
            order by dlt_load_id desc, object_key desc, line_number desc
        ) as recency
    from typed
)

select
    partner_id,
    sku,
    partner_price,
    currency,
    stock_level,
    feed_date,
    dlt_load_id
from ranked
where recency = 1
