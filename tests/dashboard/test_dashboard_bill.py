"""The bill view (bill.js) in Chromium on the running example: this month's bill against the
no-battery counterfactual, in ja and en, with the market price version."""
from __future__ import annotations

from .conftest import open_dashboard


def test_bill_view_shows_the_month_in_ja_and_en(site, browser):
    page = open_dashboard(browser, site, "operator")
    page.click("nav button[data-tab=costs]")
    page.select_option("#bill-period", "month")
    page.click("#bill-show")
    page.wait_for_selector("#tbl-bill tbody tr[data-row=basic_charge]", timeout=30_000)
    rows = page.locator("#tbl-bill tbody tr").count()
    assert rows == 10
    assert page.locator("#tbl-bill tbody tr[data-row=fuel_adjustment] th").inner_text() == "燃料費調整額"
    note = page.locator("#bill-savings").inner_text()
    assert "削減額" in note and "jepx:東北:" in note  # the example buys at the JEPX area price
    page.evaluate("localStorage.setItem('vpp_lang', 'en')")
    page.click("#bill-show")
    page.wait_for_function("document.querySelector('#tbl-bill tbody tr[data-row=energy] th')?"
                           ".textContent === 'Energy charge'", timeout=30_000)
    page.fill("#bill-home", "nobody")
    page.click("#bill-show")
    page.wait_for_function("document.getElementById('bill-out').textContent.includes('404')", timeout=30_000)
    page.context.close()
