-- Per sku: the partners' offers of the latest feed day (USD offers only, for price comparison).
with latest as (
    select max(feed_date) as feed_date
    from {{ ref('stg_landing__partner_feeds') }}
)

select
    feeds.sku,
    feeds.feed_date,
    count(*) as partner_offers,
    min(case when feeds.currency = 'USD' then feeds.partner_price end) as lowest_partner_price_usd,
    sum(feeds.stock_level) as partner_stock
from {{ ref('stg_landing__partner_feeds') }} as feeds
inner join latest on feeds.feed_date = latest.feed_date
group by feeds.sku, feeds.feed_date
