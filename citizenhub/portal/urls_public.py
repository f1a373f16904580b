"""Portal routes: public pages, the language toggle, and the attachment files."""

from django.urls import path

from citizenhub.portal.views import attachments, language, public

urlpatterns = [
    path("", public.home, name="home"),
    path("language/", language.set_language, name="set-language"),
    path("services/", public.service_list, name="services"),
    path("services/<slug:code>/", public.service_detail, name="service"),
    path("attachments/<uuid:public_id>/", attachments.attachment_file, name="attachment"),
]
