"""service-lifecycle's guard rails: plain rules (``rules``) and their CrossGuard adapter (``pack``)."""
