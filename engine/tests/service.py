"""What the tests import: the engine's names and the test service (``tests/sample/``)."""

from corsguard.app import startup_line as startup_line
from corsguard.check import AGREES as AGREES
from corsguard.check import BAD_INPUT as BAD_INPUT
from corsguard.check import DISAGREES as DISAGREES
from corsguard.check import MAX_ALLOWED as MAX_ALLOWED
from corsguard.check import MAX_REFUSED as MAX_REFUSED
from corsguard.check import UNRELATED_ORIGIN as UNRELATED_ORIGIN
from corsguard.check import Report as Report
from corsguard.check import check as check
from corsguard.cli import ALLOWED as ALLOWED
from corsguard.cli import REFUSED as REFUSED
from corsguard.cli import main as main
from corsguard.explain import explain as explain
from corsguard.middleware import CORSPolicies as CORSPolicies
from corsguard.middleware import CORSPolicy as CORSPolicy
from corsguard.middleware import PathScopedCORSMiddleware as PathScopedCORSMiddleware
from corsguard.middleware import PolicyCORSMiddleware as PolicyCORSMiddleware
from corsguard.origins import NULL as NULL
from corsguard.origins import WILDCARD as WILDCARD
from corsguard.origins import OriginError as OriginError
from corsguard.origins import OriginPattern as OriginPattern
from corsguard.origins import PatternSet as PatternSet
from corsguard.origins import is_pattern as is_pattern
from corsguard.origins import parse_origin as parse_origin
from corsguard.settings import ConfigError as ConfigError
from corsguard.settings import unprefixed_variables as unprefixed_variables
from tests.sample import Settings as Settings
from tests.sample import create_app as create_app

PACKAGE = "corsguard"
SERVICE = Settings.profiles()
ENVIRONMENT_VARIABLE = Settings.environment_variable()
