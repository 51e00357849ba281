"""What the shopper-page browser tests share: sending a photo, waiting for its results, selectors."""

from __future__ import annotations

MIN_RESULTS = 10
# The refine form of results refined to black, as the server renders it (choosing the option sets no attribute).
REFINED_TO_BLACK = "#results form.refine select[name=colour] option[value=black][selected]"


def upload(page, selector: str, content: bytes, name: str = "garment.jpg", mime: str = "image/jpeg") -> None:
    page.set_input_files(selector, files=[{"name": name, "mimeType": mime, "buffer": content}])


def wait_for_results(page) -> None:
    page.wait_for_function(f"document.querySelectorAll('.results .result').length >= {MIN_RESULTS}")
    page.wait_for_selector("#results[aria-busy=false]", state="attached")
