{#
    Company names, streets and cities in one spelling, so that records of one company compare
    equal however CRM users typed them or ERP abbreviated them (model
    int_customer_match_records; the vocabularies are seeds: identity_transliterations,
    identity_street_abbreviations, identity_legal_forms).

    These macros use DuckDB list functions with lambdas: a name is a list of words, and the
    replacement tables arrive as one list of structs per query (cross-joined), so the rules stay
    data, not code.
#}


{#
    Upper case, the configured transliterations (Ä -> AE, ß -> SS), then every remaining accent
    dropped (É -> E). `transliterations`: a list of {letter, spelled} structs, letters upper case.
#}
{% macro fold_letters(text, transliterations) -%}
    strip_accents(list_reduce(
        {{ transliterations }},
        lambda folded, pair: replace(folded, pair.letter, pair.spelled),
        upper({{ text }})
    ))
{%- endmacro %}


{#
    The words of a folded text as a list: '&' is a word of its own, every other character that
    is not a letter A-Z or a digit separates words. Empty text gives an empty list.
#}
{% macro company_word_list(text, transliterations) -%}
    list_filter(
        string_split(
            trim({{ segments.regex_replace_all(
                "replace(" ~ segments.fold_letters(text, transliterations) ~ ", '&', ' & ')",
                "[^A-Z0-9&]+", " ") }}),
            ' '
        ),
        lambda word: word <> ''
    )
{%- endmacro %}


{#
    A word list back to text, with runs of single letters or digits joined into one word
    (S P A -> SPA, A S -> AS, so "S.p.A." meets "SPA" and "A/S" meets "AS"). `words` must be a
    column (it is read several times); null when there are no words.
#}
{% macro join_letter_runs(words) -%}
    nullif(trim(array_to_string(
        list_transform(
            {{ words }},
            lambda word, i: word || case
                when i < len({{ words }})
                    and length(word) = 1 and word <> '&'
                    and length({{ words }}[i + 1]) = 1 and {{ words }}[i + 1] <> '&'
                    then ''
                else ' '
            end
        ),
        ''
    )), '')
{%- endmacro %}


{#
    A folded street with address words in their short form (HAUPTSTRASSE 5 -> HAUPTSTR 5), also
    inside compound words; punctuation becomes spaces. `abbreviations`: a list of {long, short}
    structs, upper case, applied in list order (longest first).
#}
{% macro normalise_street(text, transliterations, abbreviations) -%}
    nullif(trim({{ segments.regex_replace_all(
        "list_reduce(" ~ abbreviations ~ ", lambda street, abbreviation: "
            ~ "replace(street, abbreviation.long, abbreviation.short), "
            ~ segments.fold_letters(text, transliterations) ~ ")",
        "[^A-Z0-9&]+", " ") }}), '')
{%- endmacro %}


{# A postal code without spaces, dashes or dots, upper case (1916 mk -> 1916MK). #}
{% macro normalise_postal_code(text) -%}
    nullif(upper({{ segments.regex_replace_all(text, "[^0-9A-Za-z]", "") }}), '')
{%- endmacro %}
