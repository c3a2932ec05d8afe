"""Django's manage.py for the end-to-end project (run with tests/ on PYTHONPATH)."""

import os
import sys

# The project is the package rapidsms_project; make its parent (tests/) importable.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rapidsms_project.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
