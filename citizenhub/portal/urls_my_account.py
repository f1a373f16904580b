"""Portal routes: the resident's account home (/my/), sign-in and security, contact details."""

from django.urls import path

from citizenhub.portal.views import my_account

urlpatterns = [
    path("", my_account.home, name="my-account"),
    path("security/", my_account.security, name="my-security"),
    path("contact/", my_account.contact, name="my-contact"),
    path("contact/preference/", my_account.contact_preference, name="my-contact-preference"),
    path("contact/phone/add/", my_account.add_phone, name="my-contact-add-phone"),
    # Pending numbers (a code sent, not yet confirmed) by their verification's id.
    path(
        "contact/phone/<int:verification_id>/verify/",
        my_account.verify_phone,
        name="my-contact-verify",
    ),
    path(
        "contact/phone/<int:verification_id>/send-code/",
        my_account.send_code,
        name="my-contact-send-code",
    ),
    path("contact/<int:pk>/remove/", my_account.remove, name="my-contact-remove"),
]
