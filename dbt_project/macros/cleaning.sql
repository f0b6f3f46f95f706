{# Small cleaning rules shared by the staging models. #}

{#
    Trimmed text, empty -> null (raw keeps strings exactly as in the file): the same value as
    nullif(trim(x), ''). trim() strips every Unicode space separator, so it walks each string
    (~40 ns a value, paid per row for unique ids such as delivery_id: ~0.5 CPU-s per 20M rows
    and read). Most values are ASCII (byte length = character length) without a space at either
    end; the only ASCII space separator is ' ', so trim() would return them unchanged, and the
    cheap test lets them skip it. Anything else (non-ASCII, a space at an end) is trimmed as
    before.
#}
{% macro clean_text(column) -%}
    case
        when strlen({{ column }}) = length({{ column }})
            and not starts_with({{ column }}, ' ')
            and not ends_with({{ column }}, ' ')
            then nullif({{ column }}, '')
        else nullif(trim({{ column }}), '')
    end
{%- endmacro %}


{#
    The key a country as typed is looked up by in seeds/country_codes.csv: upper case,
    trimmed, without dots, so that "U.S.A.", " usa " and "USA" meet the same seed row.
#}
{% macro country_lookup_key(column) -%}
    nullif(replace(upper(trim({{ column }})), '.', ''), '')
{%- endmacro %}


{#
    A VAT id in one spelling: upper case, without spaces, dashes, dots or slashes, and with
    the country prefix (`vat_prefix`, e.g. FI, or EL for Greece) added when it is missing. An id
    counts as prefixed when it starts with the country's own prefix, or with two letters and a
    digit (another country's id: DE123456789 on an Austrian account). National ids that start
    with letters themselves (Mexican RFC PFH365949RD1, Austrian U12345678) get the prefix.
#}
{% macro normalize_vat_id(vat_column, vat_prefix_column) -%}
    {%- set compact = "upper(" ~ segments.regex_replace_all(vat_column, "[[:space:]./-]", "") ~ ")" -%}
    case
        when nullif({{ compact }}, '') is null then null
        when {{ vat_prefix_column }} is not null
            and left({{ compact }}, length({{ vat_prefix_column }})) = {{ vat_prefix_column }}
            then {{ compact }}
        when {{ segments.regex_matches(compact, "^[A-Z]{2}[0-9]") }} then {{ compact }}
        when {{ vat_prefix_column }} is not null then {{ dbt.concat([vat_prefix_column, compact]) }}
        else {{ compact }}
    end
{%- endmacro %}


{#
    The bare host name of a website as sales typed it ("https://www.Example.fi/en" ->
    "example.fi"): a match key beside names and VAT ids.
#}
{% macro normalize_web_domain(column) -%}
    {%- set lowered = "lower(trim(" ~ column ~ "))" -%}
    {%- set without_scheme = segments.regex_replace_all(lowered, "^[a-z][a-z0-9+.-]*://", "") -%}
    {%- set without_www = segments.regex_replace_all(without_scheme, "^www[.]", "") -%}
    nullif({{ segments.regex_replace_all(without_www, "[/:?#].*$", "") }}, '')
{%- endmacro %}


{#
    The run's as-of date: var as_of_date (unit tests, manual runs), else env SEGMENTS_AS_OF,
    which the pipeline sets. An env var, unlike --vars, keeps dbt's partial parsing valid
    between runs with different as-of dates (a full re-parse costs ~5 s per invocation). It is
    read only when dbt executes (`execute`), not while it parses: dbt re-parses every file that
    read an env var whose value changed since the saved parse, and the value never changes what
    a model refers to.
#}
{% macro as_of_date() -%}
    {%- set from_env = env_var('SEGMENTS_AS_OF', '') if execute else '' -%}
    {{ return(var('as_of_date', none) or (from_env or none)) }}
{%- endmacro %}


{# Events after the run's as-of date are ignored; no cut-off when unset. #}
{% macro is_within_as_of(date_column) -%}
    {%- set as_of = segments.as_of_date() -%}
    {%- if as_of -%}
        {{ date_column }} <= cast('{{ as_of }}' as date)
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}


{# Money in the marts: exact decimals, 4 places like the raw layer. #}
{% macro to_money(expression) -%}
    cast({{ expression }} as decimal(18, 4))
{%- endmacro %}


{# First day of the date's month, as a date. #}
{% macro month_start(date_column) -%}
    cast({{ dbt.date_trunc('month', date_column) }} as date)
{%- endmacro %}


{# The country seed keyed the way staging looks spellings up: one definition for every user. #}
{% macro country_lookup() -%}
    select
        {{ country_lookup_key('country_variant') }} as country_key,
        country_code,
        region,
        vat_prefix
    from {{ ref('country_codes') }}
{%- endmacro %}
