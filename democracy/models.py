"""Democracy data. Wards come first: addresses and residents are placed in them."""

from django.db import models


class Ward(models.Model):
    """An electoral ward, identified by its ONS GSS code (e.g. E05012345)."""

    gss_code = models.CharField("GSS code", max_length=9, unique=True)
    name = models.CharField(max_length=150)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
