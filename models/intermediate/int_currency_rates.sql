-- Exchange rates to USD with their validity: the rate of a currency applies from valid_from until
-- the day before the next row of that currency (valid_to, exclusive; null = still valid).
select
    upper(trim(currency)) as currency,
    valid_from,
    lead(valid_from) over (partition by upper(trim(currency)) order by valid_from) as valid_to,
    cast(usd_per_unit as decimal(12, 6)) as usd_per_unit
from {{ ref('currency_rates') }}
