using TcmuSharedVolume.Backends;
using TcmuSharedVolume.Volumes;

namespace TcmuSharedVolume.Tests.Backends.Rbd;

/// <summary>Every host answers with the identity kept in the image's metadata, made once by whichever came first.</summary>
[Collection(CephCollection.Name)]
public sealed class RbdIdentityTests(CephCluster ceph)
{
    [Fact]
    public void HostsStartingAtOnceAgreeOnOneIdentityKeptInTheImage()
    {
        string image = ceph.CreateImage("8M", features: "layering");
        var location = RbdLocation.Create(CephCluster.Pool, image, ceph.ConfPath);
        var stores = Enumerable.Range(0, 4).Select(_ => RbdStore.Open(location)).ToArray();
        try
        {
            var candidates = stores.Select(_ => VolumeIdentity.NewRandom(Guid.NewGuid())).ToArray();
            var found = new VolumeIdentity[stores.Length];
            using var start = new Barrier(stores.Length);
            var threads = stores.Select((s, i) => new Thread(() =>
            {
                start.SignalAndWait();
                found[i] = RbdReservationStore.EstablishIdentity(s, candidates[i]);
            })).ToArray();
            foreach (var t in threads) t.Start();
            foreach (var t in threads) t.Join();

            var winner = found[0];
            Assert.Contains(candidates, c => c.UnitSerial == winner.UnitSerial && c.NaaLocallyAssigned == winner.NaaLocallyAssigned);
            Assert.All(found, f => Assert.Equal((winner.UnitSerial, winner.NaaLocallyAssigned), (f.UnitSerial, f.NaaLocallyAssigned)));
            Assert.Equal($"{winner.UnitSerial} {winner.NaaLocallyAssigned:x16}",
                ceph.Rbd("image-meta", "get", $"{CephCluster.Pool}/{image}", RbdReservationStore.IdentityKey).Trim());

            // A host that comes later, with another serial= in its configuration, still gets the image's.
            var later = RbdReservationStore.EstablishIdentity(stores[0], new VolumeIdentity("some-other-serial"));
            Assert.Equal(winner.UnitSerial, later.UnitSerial);
        }
        finally
        {
            foreach (var s in stores) s.Dispose();
        }
    }
}
