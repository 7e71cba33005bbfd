-- One row per current product: catalogue data, margin, stock, reviews and partner prices.
with products as (
    select * from {{ ref('stg_shop__products') }}
),

stock as (
    select * from {{ ref('int_products__stock') }}
),

reviews as (
    select * from {{ ref('int_products__reviews') }}
),

partner_prices as (
    select * from {{ ref('int_products__partner_prices') }}
)

select
    products.product_id,
    products.sku,
    products.product_name,
    products.category,
    products.brand,
    products.price,
    products.cost,
    cast(products.price - products.cost as decimal(12, 2)) as unit_margin,
    {{ safe_divide('products.price - products.cost', 'products.price') }} as margin_rate,
    products.color,
    products.material,
    products.size,
    products.is_active,
    cast(coalesce(stock.units_on_hand, 0) as bigint) as units_on_hand,
    cast(coalesce(stock.warehouses_stocked, 0) as bigint) as warehouses_stocked,
    cast(coalesce(stock.warehouses_below_reorder, 0) as bigint) as warehouses_below_reorder,
    cast(coalesce(reviews.reviews, 0) as bigint) as reviews,
    reviews.average_rating,
    cast(partner_prices.partner_offers as bigint) as partner_offers,
    cast(partner_prices.lowest_partner_price_usd as decimal(12, 2)) as lowest_partner_price_usd,
    products.created_at,
    products.updated_at
from products
left join stock on products.product_id = stock.product_id
left join reviews on products.product_id = reviews.product_id
left join partner_prices on products.sku = partner_prices.sku
