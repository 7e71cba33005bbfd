-- Per sku: each partner's offer from that partner's latest feed day (a partner that stopped
-- sending feeds, or sent one dated ahead, does not hide the others' offers); USD offers only for
-- the price comparison.
with feeds as (
    select * from {{ ref('stg_landing__partner_feeds') }}
),

latest_per_partner as (
    select partner_id, max(feed_date) as feed_date
    from feeds
    group by partner_id
)

select
    feeds.sku,
    max(feeds.feed_date) as feed_date,
    count(*) as partner_offers,
    min(case when feeds.currency = 'USD' then feeds.partner_price end) as lowest_partner_price_usd,
    sum(feeds.stock_level) as partner_stock
from feeds
inner join latest_per_partner
    on feeds.partner_id = latest_per_partner.partner_id and feeds.feed_date = latest_per_partner.feed_date
group by feeds.sku
