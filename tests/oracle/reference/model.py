"""A ProtoPNet with the reference implementation's module tree, names and forward (model.py of
cfchen-duke/ProtoPNet), written for ppnet's tests from the facts in issue 25. Saved whole with
torch.save, it pickles as `model.PPNet`, as the reference's models do."""
import torch
import torch.nn as nn
import torch.nn.functional as F


class PPNet(nn.Module):
    def __init__(self, features, img_size, prototype_shape, proto_layer_rf_info, num_classes, first_channels,
                 prototype_activation_function="log", add_on_layers_type="regular"):
        super().__init__()
        self.img_size = img_size
        self.prototype_shape = prototype_shape
        self.num_prototypes = prototype_shape[0]
        self.num_classes = num_classes
        self.epsilon = 1e-4
        self.prototype_activation_function = prototype_activation_function
        per_class = self.num_prototypes // num_classes
        self.prototype_class_identity = torch.zeros(self.num_prototypes, num_classes)
        for j in range(self.num_prototypes):
            self.prototype_class_identity[j, j // per_class] = 1
        self.proto_layer_rf_info = proto_layer_rf_info
        self.features = features
        d = prototype_shape[1]
        if add_on_layers_type == "bottleneck":
            layers, cin = [], first_channels
            while cin > d or not layers:
                cout = max(d, cin // 2)
                layers += [nn.Conv2d(cin, cout, 1), nn.ReLU(), nn.Conv2d(cout, cout, 1)]
                layers.append(nn.ReLU() if cout > d else nn.Sigmoid())
                cin //= 2
            self.add_on_layers = nn.Sequential(*layers)
        else:
            self.add_on_layers = nn.Sequential(nn.Conv2d(first_channels, d, 1), nn.ReLU(), nn.Conv2d(d, d, 1), nn.Sigmoid())
        self.prototype_vectors = nn.Parameter(torch.rand(prototype_shape), requires_grad=True)
        self.ones = nn.Parameter(torch.ones(prototype_shape), requires_grad=False)
        self.last_layer = nn.Linear(self.num_prototypes, num_classes, bias=False)

    def conv_features(self, x):
        return self.add_on_layers(self.features(x))

    def prototype_distances(self, x):
        z = self.conv_features(x)
        z2 = F.conv2d(z ** 2, weight=self.ones)
        p2 = (self.prototype_vectors ** 2).sum(dim=(1, 2, 3)).view(-1, 1, 1)
        zp = F.conv2d(z, weight=self.prototype_vectors)
        return F.relu(z2 - 2 * zp + p2)

    def distance_2_similarity(self, d):
        if self.prototype_activation_function == "log":
            return torch.log((d + 1) / (d + self.epsilon))
        return -d

    def forward(self, x):
        distances = self.prototype_distances(x)
        min_distances = -F.max_pool2d(-distances, kernel_size=distances.shape[2:]).view(-1, self.num_prototypes)
        return self.last_layer(self.distance_2_similarity(min_distances)), min_distances
