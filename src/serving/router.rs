//! The endpoint router: key auth and traffic split across an endpoint's deployments.
