{{ config(materialized='table') }}
-- Every staged CRM account and ERP customer (int_customer_records_unioned) with the attributes
-- identity resolution compares, each in one spelling (macros/company_names.sql). The identity
-- step (dagster_project/identity) reads this table; it runs before the identity map exists, so
-- nothing here depends on it.
--
-- Names: folded (upper case, transliterated, accents dropped), punctuation to spaces with '&'
-- kept as a word, runs of single letters joined (S.p.A. -> SPA), then trailing legal forms
-- stripped (seeds/identity_legal_forms.csv, each spelling normalised by the same rules), longest
-- spelling first and repeatedly, so "GmbH & Co. KG" goes as a whole and "& Co. KG" in two steps.
-- The legal form is kept apart (weak evidence): every form the outermost stripped spelling can
-- mean, '|'-separated ("Private Limited" is Pte Ltd in Singapore and Pvt Ltd in India). A name
-- that is only a legal form keeps it.
{% set max_legal_form_strips = 4 %}
with

transliterations as (
    select coalesce(list({'letter': upper(letter), 'spelled': upper(spelled)}), []) as pairs
    from {{ ref('identity_transliterations') }}
),

street_abbreviations as (
    select
        coalesce(
            list({'long': upper(long), 'short': upper(short)} order by length(long) desc, long),
            []
        ) as pairs
    from {{ ref('identity_street_abbreviations') }}
),

legal_form_words as (
    select
        legal_forms.legal_form,
        {{ company_word_list('legal_forms.spelling', 'transliterations.pairs') }} as words
    from {{ ref('identity_legal_forms') }} as legal_forms
    cross join transliterations
    where legal_forms.legal_form is not null
),

legal_form_spellings as (
    select
        {{ join_letter_runs('words') }} as spelling,
        string_agg(distinct legal_form, '|' order by legal_form) as legal_forms
    from legal_form_words
    group by all
),

spellings as (
    -- longest first: the first spelling a name ends with is the one to strip
    select
        coalesce(
            list({'spelling': spelling, 'legal_forms': legal_forms}
                 order by length(spelling) desc, spelling),
            []
        ) as candidates
    from legal_form_spellings
    where spelling is not null
),

source_records as (
    select * from {{ ref('int_customer_records_unioned') }}
),

word_lists as (
    select
        source_records.*,
        {{ company_word_list('source_records.record_name', 'transliterations.pairs') }}
            as name_word_list,
        {{ company_word_list('source_records.city', 'transliterations.pairs') }}
            as city_word_list,
        {{ normalise_street('source_records.street', 'transliterations.pairs',
                            'street_abbreviations.pairs') }} as street_norm
    from source_records
    cross join transliterations
    cross join street_abbreviations
),

names_0 as (
    select
        source_system,
        source_id,
        {{ join_letter_runs('name_word_list') }} as name_rest,
        cast(null as {{ dbt.type_string() }}) as legal_form
    from word_lists
),

{% for step in range(1, max_legal_form_strips + 1) %}
matched_{{ step }} as (
    select
        names.*,
        list_filter(
            spellings.candidates,
            lambda candidate: ends_with(names.name_rest, ' ' || candidate.spelling)
        )[1] as hit
    from names_{{ step - 1 }} as names
    cross join spellings
),

names_{{ step }} as (
    select
        source_system,
        source_id,
        case
            -- a trailing '&' is what is left of "& Co" once Co is gone
            when name_rest = '&' then null
            when ends_with(name_rest, ' &') then left(name_rest, length(name_rest) - 2)
            when hit is not null
                then left(name_rest, length(name_rest) - length(hit.spelling) - 1)
            else name_rest
        end as name_rest,
        -- the outermost legal form names the company's form; inner ones are part of it
        coalesce(
            legal_form,
            case when name_rest <> '&' and not ends_with(name_rest, ' &') then hit.legal_forms end
        ) as legal_form
    from matched_{{ step }}
),
{% endfor %}

names as (
    select
        source_system,
        source_id,
        nullif(name_rest, '') as name_norm,
        legal_form
    from names_{{ max_legal_form_strips }}
)

select
    word_lists.source_system,
    word_lists.source_id,
    word_lists.record_name,
    names.name_norm,
    names.legal_form,
    split_part(names.name_norm, ' ', 1) as name_token,
    word_lists.street_norm,
    {{ normalise_postal_code('word_lists.postal_code') }} as postal_code_norm,
    {{ join_letter_runs('word_lists.city_word_list') }} as city_norm,
    word_lists.country_code,
    word_lists.vat_id,
    word_lists.website_domain,
    word_lists.erp_customer_number,
    word_lists.parent_account_id,
    word_lists.is_deleted
from word_lists
inner join names
    on names.source_system = word_lists.source_system
    and names.source_id = word_lists.source_id
