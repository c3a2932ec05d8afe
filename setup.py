from setuptools import find_packages, setup

setup(
    name="gsmbridge",
    version="0.1.0",
    description="A standalone SMS gateway daemon between a serial GSM modem and RapidSMS",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["gsmbridge", "gsmbridge.*"]),
    python_requires=">=3.9",
    install_requires=[
        "pyserial>=3.5",
        "Flask>=2.2",
        "requests>=2.28",
        "waitress>=2.1",
        "supervisor>=4.2",
        "prometheus_client>=0.17",
    ],
    extras_require={
        "test": [
            "pytest>=7",
            "hypothesis>=6",
            "python-gammu>=3.2",
        ],
    },
    entry_points={"console_scripts": ["gsmbridge = gsmbridge.cli:main"]},
)
