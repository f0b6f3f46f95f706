"""Company-name normalisation: the spellings CRM users type and ERP abbreviates compare equal."""

from __future__ import annotations

import pytest

from dagster_project.identity.normalise import (
    NameNormaliser,
    normalise_domain,
    normalise_postal_code,
    normalise_street,
)
from dagster_project.identity.settings import identity_settings, load_legal_forms


@pytest.fixture(scope="module")
def names() -> NameNormaliser:
    forms = load_legal_forms()
    return NameNormaliser(
        zip(forms["legal_form"], forms["spelling"], strict=True),
        identity_settings().normalisation.transliteration,
    )


@pytest.mark.parametrize(
    ("crm", "erp", "expected_name", "expected_form"),
    [
        (
            "Müller Kraftwerk GmbH & Co. KG",
            "MUELLER KRAFTWERK GMBH & CO KG",
            "MUELLER KRAFTWERK",
            "GmbH & Co. KG",
        ),
        ("Metalli Milano S.p.A.", "METALLI MILANO SPA", "METALLI MILANO", "SpA"),
        ("Äänekosken Energia Oy", "AEAENEKOSKEN ENERGIA OY", "AEAENEKOSKEN ENERGIA", "Oy"),
        ("Straßenbau Nord AG", "STRASSENBAU NORD AKTIENGESELLSCHAFT", "STRASSENBAU NORD", "AG"),
        ("Lumant Digital Co., Ltd.", "LUMANT DIGITAL CO LTD", "LUMANT DIGITAL", "Co Ltd"),
        ("Polska Energia Sp. z o.o.", "POLSKA ENERGIA SP Z OO", "POLSKA ENERGIA", "Sp. z o.o."),
        (
            "Energia Queretaro S.A. de C.V.",
            "ENERGIA QUERETARO SA DE CV",
            "ENERGIA QUERETARO",
            "SA de CV",
        ),
        ("Nordkraft A/S", "NORDKRAFT AS", "NORDKRAFT", "AS"),
        ("Tervik AB (publ)", "TERVIK AB", "TERVIK", "AB"),
        ("Korant Generation Ltd.", "KORANT GENERATION LIMITED", "KORANT GENERATION", "Ltd"),
        ("Óleo e Gás Conceição Ltda", "OLEO E GAS CONCEICAO LTDA", "OLEO E GAS CONCEICAO", "Ltda"),
    ],
)
def test_crm_and_erp_spellings_normalise_to_one_name(names, crm, erp, expected_name, expected_form):
    assert names.normalise(crm) == (expected_name, expected_form)
    assert names.normalise(erp) == (expected_name, expected_form)


def test_a_name_that_is_only_a_legal_form_keeps_it(names):
    assert names.normalise("GmbH") == ("GMBH", None)
    assert names.normalise(None) == (None, None)


def test_legal_forms_come_from_the_seed_not_code():
    from dagster_project.identity.normalise import NameNormaliser

    custom = NameNormaliser([("Kft", "Kft."), ("Kft", "Korlátolt felelősségű társaság")], {})
    assert custom.normalise("Budapest Energia Kft.") == ("BUDAPEST ENERGIA", "Kft")
    assert custom.normalise("Budapest Energia GmbH") == ("BUDAPEST ENERGIA GMBH", None)


def test_streets_postal_codes_and_domains():
    norm = identity_settings().normalisation
    crm = normalise_street("Hauptstraße 12", norm.transliteration, norm.street_abbreviations)
    erp = normalise_street("HAUPTSTR. 12", norm.transliteration, norm.street_abbreviations)
    assert crm == erp == "HAUPTSTR 12"
    assert normalise_postal_code("1916 mk") == normalise_postal_code("1916MK") == "1916MK"
    assert normalise_domain("www.Acme.fi", norm.ignored_domains) == "acme.fi"
    assert normalise_domain("gmail.com", norm.ignored_domains) is None
