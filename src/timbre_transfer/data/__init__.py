"""Data: audio -> a feature store (``prepare``), the store on disk (``store``), training crops
(``dataset``), and built-in synthetic audio (``synthetic``)."""
