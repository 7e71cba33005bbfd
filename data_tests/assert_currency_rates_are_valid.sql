{{ config(meta={'dagster': {'ref': {'name': 'currency_rates'}}}) }}

-- Every rate is positive, USD is exactly 1 and present from the start, codes are ISO-shaped.
select currency, valid_from, usd_per_unit, 'rate not positive' as problem
from {{ ref('currency_rates') }}
where usd_per_unit <= 0
union all
select currency, valid_from, usd_per_unit, 'USD rate is not 1'
from {{ ref('currency_rates') }}
where currency = 'USD' and usd_per_unit <> 1
union all
select currency, valid_from, usd_per_unit, 'not a three-letter upper-case code'
from {{ ref('currency_rates') }}
where length(currency) <> 3 or upper(currency) <> currency
union all
select 'USD', cast(null as date), cast(null as decimal(12, 6)), 'no USD rate'
from (select count(*) as usd_rows from {{ ref('currency_rates') }} where currency = 'USD') as usd
where usd.usd_rows = 0
