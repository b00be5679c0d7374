"""The browser page served at `/` (index.html, app.js, capture-worklet.js)."""
from pathlib import Path

PAGE_DIR = Path(__file__).resolve().parent
