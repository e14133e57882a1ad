using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibSystemd
{
    /// <summary>Emits ObjectManager.InterfacesAdded for every interface registered at path.</summary>
    [LibraryImport(Library, EntryPoint = "sd_bus_emit_object_added", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int sd_bus_emit_object_added(nint bus, string path);
}
