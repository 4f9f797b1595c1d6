"""Pure helpers of operator/kube.py."""

from taskplatform.operator.kinds import DEPLOYMENT, SECRET, TASK_PLATFORM
from taskplatform.operator.kube import owns_field


def deployment(manager: str, operation: str = "Apply") -> dict:
    fields = {"f:spec": {"f:replicas": {}, "f:template": {}}}
    return {"metadata": {"managedFields": [{"manager": manager, "operation": operation, "fieldsV1": fields}]}}


def test_owns_field_reads_the_managed_fields_of_server_side_apply() -> None:
    assert owns_field(deployment("taskplatform-operator"), "spec", "replicas")
    assert not owns_field(deployment("taskplatform-operator"), "spec", "selector")
    assert not owns_field(deployment("kube-controller-manager"), "spec", "replicas")
    assert not owns_field(deployment("taskplatform-operator", "Update"), "spec", "replicas")
    assert not owns_field(None, "spec", "replicas")


def test_resource_paths() -> None:
    assert SECRET.path("ns", "x") == "/api/v1/namespaces/ns/secrets/x"
    assert DEPLOYMENT.path("ns") == "/apis/apps/v1/namespaces/ns/deployments"
    assert TASK_PLATFORM.path("ns", "x", "status") == (
        "/apis/taskplatform.io/v1alpha1/namespaces/ns/taskplatforms/x/status"
    )
