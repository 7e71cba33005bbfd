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
    products.price - products.cost as unit_margin,
    {{ safe_divide('products.price - products.cost', 'products.price') }} as margin_rate,
    products.color,
    products.material,
    products.size,
    products.is_active,
    coalesce(stock.units_on_hand, 0) as units_on_hand,
    coalesce(stock.warehouses_stocked, 0) as warehouses_stocked,
    coalesce(stock.warehouses_below_reorder, 0) as warehouses_below_reorder,
    coalesce(reviews.reviews, 0) as reviews,
    reviews.average_rating,
    partner_prices.partner_offers,
    partner_prices.lowest_partner_price_usd,
    products.created_at,
    products.updated_at
from products
left join stock on products.product_id = stock.product_id
left join reviews on products.product_id = reviews.product_id
left join partner_prices on products.sku = partner_prices.sku
