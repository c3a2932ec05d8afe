from setuptools import find_packages, setup

setup(
    name="gsmbridge",
    version="0.1.0",
    description="A standalone SMS gateway daemon between a serial GSM modem and RapidSMS",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["gsmbridge", "gsmbridge.*"]),
    package_data={"gsmbridge.web": ["templates/*.html"]},  # the status page
    python_requires=">=3.10",
    install_requires=[
        "pyserial>=3.5",
        "Flask>=2.2",
        "requests>=2.28",
        "waitress>=2.1",
        "supervisor>=4.2",
        "prometheus_client>=0.17",
        # [cluster]: several hosts over the broker a Celery deployment runs (RabbitMQ, Redis)
        "kombu>=5.3",
        "redis>=4.5.2,<9",
    ],
    extras_require={
        "test": [
            "pytest>=7",
            # Most tests wait on serial lines and sockets, not the CPU: three at once.
            "pytest-xdist>=3",
            "hypothesis>=6",
            "python-gammu>=3.2",
            # The end-to-end tests run gsmbridge against an unmodified RapidSMS 2.2.0, which
            # needs Django 4.2 (it does not run on 5.x).
            "RapidSMS==2.2.0",
            "Django>=4.2,<5",
            "djappsettings==0.4.0",
            "django-selectable==1.5.0",
            "django-tables2==3.0.1",
            "schemathesis>=4.0",   # fuzzes the HTTP API against its OpenAPI document
            "selenium>=4.11",      # drives Debian's chromium for the status page test
            "phonenumbers>=8.13",  # the RapidPro test's courier reads senders as courier does
        ],
    },
    entry_points={"console_scripts": ["gsmbridge = gsmbridge.cli:main"]},
)
