package crds
