{#-
  The run window of the daily-partitioned (incremental) marts.

  vars: min_date (inclusive) and max_date (exclusive), YYYY-MM-DD, as passed by Dagster for a
  partition (range); lookback_days (default 2) moves the start back so that late-arriving rows of
  the previous days are rebuilt too. Effective window: [min_date - lookback_days, max_date).
  Without vars the window is unbounded: every day is rebuilt.

  Each incremental mart filters its rows with `in_window(<date column>)` and deletes the same days
  from itself before inserting (`replace_window(<date column>)` as pre-hook, append strategy): a
  run replaces exactly the days of its window, so re-running a partition is idempotent and rows
  that disappeared upstream (deleted orders) disappear from the mart too. Every daily mart also
  rebuilds the earlier days whose data reached the lake inside the window, however old those days
  are (`int_restated_dates`; `in_window_or_restated(<column>, kinds)` / `replace_window(<column>,
  restated=kinds)`): order marts the days of late status changes, refunds, edits and deletes of
  old orders ('orders'), the campaign mart those and restated or late ad spend ('ad_spend'), the
  clickstream marts the days of landing files loaded late or corrected ('clickstream').
-#}

{% macro _parse_date_var(name) -%}
  {%- set raw = var(name, none) -%}
  {%- if raw is none or (raw | string | trim) in ('', 'none', 'None', 'null') -%}
    {{ return(none) }}
  {%- endif -%}
  {%- set text = raw | string | trim -%}
  {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', text) -%}
    {{ exceptions.raise_compiler_error("var '" ~ name ~ "' must be a date YYYY-MM-DD, got '" ~ text ~ "'") }}
  {%- endif -%}
  {%- set parsed = modules.datetime.datetime.strptime(text, '%Y-%m-%d').date() -%}
  {{ return(parsed) }}
{%- endmacro %}

{#- {'start': 'YYYY-MM-DD' or none, 'end': 'YYYY-MM-DD' or none}. A window starting at the first
    partition (var first_partition_date, Dagster's first partition) has no start: that run also
    rebuilds every earlier day, so data older than the partitions (orders placed before the lake's
    first day) reaches the facts. -#}
{% macro run_window() -%}
  {%- set min_date = _parse_date_var('min_date') -%}
  {%- set max_date = _parse_date_var('max_date') -%}
  {%- set first_partition = _parse_date_var('first_partition_date') -%}
  {%- set lookback = var('lookback_days', 2) | int -%}
  {%- if lookback < 0 -%}
    {{ exceptions.raise_compiler_error("var 'lookback_days' must be >= 0, got " ~ lookback) }}
  {%- endif -%}
  {%- if min_date is not none and max_date is not none and min_date >= max_date -%}
    {{ exceptions.raise_compiler_error("min_date (" ~ min_date ~ ") must be before max_date (" ~ max_date ~ "): max_date is exclusive") }}
  {%- endif -%}
  {%- if min_date is none or (first_partition is not none and min_date <= first_partition) -%}
    {%- set start = none -%}
  {%- else -%}
    {%- set start = (min_date - modules.datetime.timedelta(days=lookback)).isoformat() -%}
  {%- endif -%}
  {%- set end = none if max_date is none else max_date.isoformat() -%}
  {{ return({'start': start, 'end': end}) }}
{%- endmacro %}

{#- Predicate: `column` inside the run window; `end_slack_days` widens the end (for inputs of rows
    that start inside the window but continue past its end, e.g. sessions across midnight). -#}
{% macro in_window(column, start_slack_days=0, end_slack_days=0) -%}
  {%- set window = run_window() -%}
  {%- set conditions = [] -%}
  {%- if window.start is not none -%}
    {%- set start = modules.datetime.date.fromisoformat(window.start) - modules.datetime.timedelta(days=start_slack_days) -%}
    {%- do conditions.append(column ~ ' >= ' ~ date_literal(start.isoformat())) -%}
  {%- endif -%}
  {%- if window.end is not none -%}
    {%- set end = modules.datetime.date.fromisoformat(window.end) + modules.datetime.timedelta(days=end_slack_days) -%}
    {%- do conditions.append(column ~ ' < ' ~ date_literal(end.isoformat())) -%}
  {%- endif -%}
  {%- if conditions -%}({{ conditions | join(' and ') }}){%- else -%}(1 = 1){%- endif -%}
{%- endmacro %}

{#- The earlier days that int_restated_dates lists for `kinds` ('orders', 'ad_spend',
    'clickstream'), as YYYY-MM-DD strings. Read when the model runs (dbt compiles a node right
    before running it, after int_restated_dates was rebuilt), so they reach the SQL as literals and
    the date filters still prune partitions. Empty at parse time, in dbt unit tests and before
    int_restated_dates exists. -#}
{% macro restated_dates(kinds) -%}
  {%- set restated = ref('int_restated_dates') -%}  {#- before any early return: the dependency -#}
  {#- not executing, or a dbt unit test (the ref is a CTE there, its rows come as an input) -#}
  {%- if not execute or restated.schema is none -%}{{ return([]) }}{%- endif -%}
  {%- set relation = load_relation(restated) -%}
  {%- if relation is none -%}{{ return([]) }}{%- endif -%}
  {%- set query -%}
    select distinct cast(restated_date as varchar) as restated_date
    from {{ relation }}
    where restated_for in ('{{ kinds | join("', '") }}')
    order by 1
  {%- endset -%}
  {%- set days = [] -%}
  {%- for value in run_query(query).columns[0].values() -%}
    {%- do days.append(value | string) -%}
  {%- endfor -%}
  {{ return(days) }}
{%- endmacro %}

{#- Predicate: `column` inside the run window, or on one of the earlier days restated for `kinds`
    (with `slack_days` around each of them and around the window, for inputs of rows that cross
    midnight). -#}
{% macro in_window_or_restated(column, kinds, slack_days=0) -%}
  {%- set days = [] -%}
  {%- for day in restated_dates(kinds) -%}
    {%- for offset in range(-slack_days, slack_days + 1) -%}
      {%- set shifted = (modules.datetime.date.fromisoformat(day[:10]) + modules.datetime.timedelta(days=offset)).isoformat() -%}
      {%- if shifted not in days -%}{%- do days.append(shifted) -%}{%- endif -%}
    {%- endfor -%}
  {%- endfor -%}
  {%- if days -%}
    ({{ in_window(column, slack_days, slack_days) }} or {{ column }} in ({% for day in days | sort %}{{ date_literal(day) }}{{ ", " if not loop.last }}{% endfor %}))
  {%- else -%}
    {{ in_window(column, slack_days, slack_days) }}
  {%- endif -%}
{%- endmacro %}

{#- Predicate: `column` on or after the earliest day the run rebuilds (its window's start or an
    earlier restated day of `kinds`) minus `slack_days`, with no upper bound: for inputs of rows
    that start inside the rebuilt days and may continue past them (sessions). -#}
{% macro since_earliest_rebuilt_day(column, kinds, slack_days=0) -%}
  {%- set window = run_window() -%}
  {%- if window.start is none -%}
    (1 = 1)
  {%- else -%}
    {%- set days = [window.start] -%}
    {%- for day in restated_dates(kinds) -%}{%- do days.append(day[:10]) -%}{%- endfor -%}
    {%- set earliest = days | min -%}
    {%- set start = modules.datetime.date.fromisoformat(earliest) - modules.datetime.timedelta(days=slack_days) -%}
    ({{ column }} >= {{ date_literal(start.isoformat()) }})
  {%- endif -%}
{%- endmacro %}

{#- Pre-hook of the incremental marts: delete the days the run rebuilds before the new rows are
    appended; `restated` = the kinds of restated days the mart rebuilds too (as it selects with
    `in_window_or_restated`). -#}
{% macro replace_window(column, restated=none) -%}
  {%- if execute and is_incremental() -%}
    delete from {{ this }} where {{ in_window_or_restated(column, restated) if restated else in_window(column) }}
  {%- endif -%}
{%- endmacro %}
