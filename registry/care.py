"""Changes to the care model: accounts, teams, contracts, rota, family consents, the patient.

Like :mod:`registry.repositories`, each repository works in the caller's transaction and
returns frozen records. Rules enforced here (besides the database's own constraints):

* a username is unique, lower-case letters, digits, ``.``, ``_`` and ``-``; staff accounts
  carry at least one staff role, patient and family accounts none;
* a patient has at most one open contract; a contract cannot start before the previous one
  ended; ending a contract records the reason;
* a duty shift names an active family doctor, who need not be a member of the team: a
  centre's night duty covers several teams, and the shift alone gives the duty doctor access
  to the team's patients while it lasts;
* a family consent needs a family link, names known scopes and is revoked, never deleted;
* targets and statuses are effective-dated history: setting one appends a row.

Who may call which method is decided by the API's authorization, not here.

The repositories live in :mod:`registry.accounts`, :mod:`registry.teams`,
:mod:`registry.family` and :mod:`registry.patient_care`; this module gathers them.
"""

from registry.accounts import AccountRecord, AccountRepository
from registry.care_lookup import MAX_REASON_LENGTH, USERNAME_PATTERN
from registry.family import ConsentRecord, FamilyRepository, parse_scopes
from registry.patient_care import PatientCareRepository, StatusRecord, TargetRecord
from registry.teams import (
    ContractRecord,
    ContractRepository,
    RotaRepository,
    ShiftRecord,
    TeamRepository,
)

__all__ = [
    "MAX_REASON_LENGTH",
    "USERNAME_PATTERN",
    "AccountRecord",
    "AccountRepository",
    "ConsentRecord",
    "ContractRecord",
    "ContractRepository",
    "FamilyRepository",
    "PatientCareRepository",
    "RotaRepository",
    "ShiftRecord",
    "StatusRecord",
    "TargetRecord",
    "TeamRepository",
    "parse_scopes",
]
