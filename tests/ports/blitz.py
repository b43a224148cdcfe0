# "Deep Learning with PyTorch: A 60 Minute Blitz" (pytorch.org tutorials): tensors, autograd, the LeNet
# network, and training/saving a classifier. Written for PyTorch; tests/test_ports.py runs it on tinyzoo
# with only the import lines changed. (CIFAR-10 is replaced by random images of the same shape, because
# the tests run offline; `f.data.sub_(...)` by `f.data -= ...` — see docs/pytorch.md.)
import os
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.utils.data import DataLoader, TensorDataset

# --- tensors ------------------------------------------------------------------------------------
data = [[1, 2], [3, 4]]
x_data = torch.tensor(data)
np_array = np.array(data)
x_np = torch.from_numpy(np_array)
x_ones = torch.ones_like(x_data)
x_rand = torch.rand_like(x_data, dtype=torch.float)
shape = (2, 3,)
rand_tensor = torch.rand(shape)
ones_tensor = torch.ones(shape)
zeros_tensor = torch.zeros(shape)
tensor = torch.rand(3, 4)
print(f"Shape of tensor: {tensor.shape}, datatype: {tensor.dtype}, device: {tensor.device}")
if torch.cuda.is_available():
    tensor = tensor.to("cuda")
tensor = torch.ones(4, 4)
print(f"First row: {tensor[0]}  First column: {tensor[:, 0]}  Last column: {tensor[..., -1]}")
tensor[:, 1] = 0
t1 = torch.cat([tensor, tensor, tensor], dim=1)
assert t1.shape == (4, 12)
y1 = tensor @ tensor.T
y2 = tensor.matmul(tensor.T)
z1 = tensor * tensor
z2 = tensor.mul(tensor)
assert torch.equal(y1, y2) and torch.equal(z1, z2)
agg = tensor.sum()
agg_item = agg.item()
assert agg_item == 12.0 and isinstance(agg_item, float)
tensor.add_(5)
assert tensor[0, 1].item() == 5
t = torch.ones(5)
n = t.numpy()
t.add_(1)
assert n[0] == 2  # the tensor and the array share memory
n = np.ones(5)
t = torch.from_numpy(n)
np.add(n, 1, out=n)
assert t[0].item() == 2

# --- autograd ---------------------------------------------------------------------------------------
a = torch.tensor([2., 3.], requires_grad=True)
b = torch.tensor([6., 4.], requires_grad=True)
Q = 3 * a ** 3 - b ** 2
external_grad = torch.tensor([1., 1.])
Q.backward(gradient=external_grad)
assert (9 * a ** 2 == a.grad).all() and (-2 * b == b.grad).all()
x = torch.rand(5, 5)
y = torch.rand(5, 5)
z = torch.rand((5, 5), requires_grad=True)
assert not (x + y).requires_grad and (x + z).requires_grad


# --- neural networks: LeNet ------------------------------------------------------------------------
class Net(nn.Module):
    def __init__(self):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, input):
        c1 = F.relu(self.conv1(input))
        s2 = F.max_pool2d(c1, (2, 2))
        c3 = F.relu(self.conv2(s2))
        s4 = F.max_pool2d(c3, 2)
        s4 = torch.flatten(s4, 1)
        f5 = F.relu(self.fc1(s4))
        f6 = F.relu(self.fc2(f5))
        output = self.fc3(f6)
        return output


net = Net()
params = list(net.parameters())
print(len(params), params[0].size())
assert len(params) == 10 and params[0].size() == (6, 1, 5, 5)
input = torch.randn(1, 1, 32, 32)
out = net(input)
net.zero_grad()
out.backward(torch.randn(1, 10))
output = net(input)
target = torch.randn(10)
target = target.view(1, -1)
criterion = nn.MSELoss()
loss = criterion(output, target)
print(loss.grad_fn)
net.zero_grad()
print("conv1.bias.grad before backward", net.conv1.bias.grad)
loss.backward()
print("conv1.bias.grad after backward", net.conv1.bias.grad)
learning_rate = 0.01
for f in net.parameters():
    f.data -= f.grad.data * learning_rate
optimizer = optim.SGD(net.parameters(), lr=0.01)
optimizer.zero_grad()
output = net(input)
loss = criterion(output, target)
loss.backward()
optimizer.step()


# --- training a classifier (random 3×32×32 images standing in for CIFAR-10) ------------------------
class CifarNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        x = self.fc3(x)
        return x


images = torch.randn(64, 3, 32, 32)
labels = torch.randint(0, 10, (64,))
trainloader = DataLoader(TensorDataset(images, labels), batch_size=4, shuffle=True)
net = CifarNet()
criterion = nn.CrossEntropyLoss()
optimizer = optim.SGD(net.parameters(), lr=0.001, momentum=0.9)
for epoch in range(2):
    running_loss = 0.0
    for i, data in enumerate(trainloader, 0):
        inputs, labels_batch = data
        optimizer.zero_grad()
        outputs = net(inputs)
        loss = criterion(outputs, labels_batch)
        loss.backward()
        optimizer.step()
        running_loss += loss.item()
    print(f"[{epoch + 1}] loss: {running_loss / (i + 1):.3f}")
PATH = os.path.join(tempfile.mkdtemp(), "cifar_net.pth")
torch.save(net.state_dict(), PATH)
net = CifarNet()
net.load_state_dict(torch.load(PATH))
correct = 0
total = 0
with torch.no_grad():
    for data in trainloader:
        images_batch, labels_batch = data
        outputs = net(images_batch)
        _, predicted = torch.max(outputs, 1)
        total += labels_batch.size(0)
        correct += (predicted == labels_batch).sum().item()
print(f"Accuracy of the network on the {total} training images: {100 * correct // total} %", file=sys.stderr)
assert total == 64
