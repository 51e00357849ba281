from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.urls import path, re_path
from django.views.static import serve

from catalog import views
from catalog.api import api

urlpatterns = [
    path("", views.home, name="home"),
    path("items/<int:pk>/", views.item_detail, name="item_detail"),
    path("search/", views.text_search, name="text_search"),
    path("look/", views.look_panel, name="look_panel"),
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
]

if settings.SERVE_MEDIA:
    # Self-hosted installs serve catalog photos from the app; a CDN or web server can take over.
    urlpatterns += [re_path(r"^media/(?P<path>.*)$", serve, {"document_root": settings.MEDIA_ROOT})]
