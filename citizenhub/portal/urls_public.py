"""Portal routes: public pages and the language toggle."""

from django.urls import path

from citizenhub.portal.views import language, public

urlpatterns = [
    path("", public.home, name="home"),
    path("language/", language.set_language, name="set-language"),
]
