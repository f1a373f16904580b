from django.contrib import admin

from democracy.models import Ward


@admin.register(Ward)
class WardAdmin(admin.ModelAdmin):
    list_display = ("name", "gss_code")
    search_fields = ("name", "=gss_code")
