"""Who may call the API: for now council staff only (API clients with scopes come later)."""

from rest_framework.permissions import BasePermission


class IsCouncilStaff(BasePermission):
    message = "This API is for council staff; sign in with a staff account or token."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_active and user.is_staff)
