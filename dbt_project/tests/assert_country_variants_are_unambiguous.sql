-- Every country spelling in seeds/country_codes.csv, as staging looks it up (upper case,
-- trimmed, no dots), names one country, and every country has one region and VAT prefix.
-- A row returned is a seed edit that would make country normalisation ambiguous.
with

countries as (
    {{ country_lookup() }}
),

ambiguous_spellings as (
    select
        'spelling ' || country_key || ' names several countries' as problem
    from countries
    group by country_key
    having count(distinct country_code) > 1
),

inconsistent_countries as (
    select
        'country ' || country_code || ' has several regions or VAT prefixes' as problem
    from countries
    group by country_code
    having count(distinct region) > 1 or count(distinct vat_prefix) > 1
)

select problem from ambiguous_spellings
union all
select problem from inconsistent_countries
